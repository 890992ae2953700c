import hashlib
import json
import os.path
# 借助第三方模块
import socket
import struct

client = socket.socket()
addr = "127.0.0.1"
prot = 9696
client.connect((addr, prot))
while True:
    data_to_server = input("请输入给服务端的数据 :>>>> ").strip()  # girl

    # 判断当前客户端输入的内容是否是空数据
    # 如果是空数据就会导致服务端和和客户端阻塞
    if not data_to_server: continue

    client.send(data_to_server.encode("utf-8"))
    if data_to_server == "q":
        break

    # 最开始接收到的数据一定是四个字节的二进制数据
    pack_data = client.recv(4)
    # 让 struct 模块将打包号的四个字节的二进制数据解包
    print(pack_data)
    json_data_length_all = struct.unpack("i", pack_data)[0]
    # 接收到的结果应该是当前字典转为json字符串后再转为二进制数据的长度
    file_data_dict = json.loads(client.recv(json_data_length_all))
    # 提取出当前文件数据的总长度
    data_length_all = file_data_dict.get('data_all')
    print(f"data_length_all :>>>> {data_length_all}")
    count_data = 0
    data = b""
    buffer_size = 1024
    while count_data < data_length_all:
        # 每次提取固定大小的数据 拼接到总数据中
        data += client.recv(buffer_size)
        # 计算已经提取了多少数据
        count_data += buffer_size
    # 计算当前总数据的哈希值
    md5 = hashlib.md5()
    md5.update(data)

    # 从json字典中取出原本的哈希值
    file_hex = file_data_dict.get('file_hex')
    print(f"old_hex :>>>> {file_hex}")
    print(f"new_hex :>>>> {md5.hexdigest()}")
    if file_hex != md5.hexdigest():
        print("文件已损坏!")
        break
    file_name = 'nb_' + file_data_dict.get("file_name")
    file_type = file_data_dict.get("file_type")
    file_path = os.path.join(os.path.dirname(__file__), file_name + '.'+file_type)
    with open(file_path, "wb") as fp:
        fp.write(data)
