# 借助第三方模块
import socket
import struct

client = socket.socket()
addr = "127.0.0.1"
prot = 9696
client.connect((addr, prot))
while True:
    data_to_server = input("请输入给服务端的数据 :>>>> ").strip()

    # 判断当前客户端输入的内容是否是空数据
    # 如果是空数据就会导致服务端和和客户端阻塞
    if not data_to_server: continue

    client.send(data_to_server.encode("utf-8"))
    if data_to_server == "q":
        break

    # 最开始接收到的数据一定是四个字节的二进制数据
    data_length_bytes = client.recv(4)
    # 让 struct 模块将打包号的四个字节的二进制数据解包
    data_length_all = struct.unpack("i",data_length_bytes)[0]
    print(data_length_all) # 获取到所有的数据的全部长度
    # 接下来遍历每一次的固定值提取数据
    count_data = 0
    data = b""
    buffer_size = 1024
    while count_data < data_length_all:
        # 每次提取固定大小的数据 拼接到总数据中
        data += client.recv(buffer_size)
        # 计算已经提取了多少数据
        count_data += buffer_size
    result = data.decode()
    if result == "q":
        break
    print(f"data_from_server :>>>>\n {result}")
