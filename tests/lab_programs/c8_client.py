# 借助第三方模块
import socket

client = socket.socket()
addr = "127.0.0.1"
prot = 9696
client.connect((addr, prot))
while True:
    data_to_server = input("请输入给服务端的数据 :>>>> ").strip()

    # 判断当前客户端输入的内容是否是空数据
    # 如果是空数据就会导致服务端和和客户端阻塞 所以要避免
    if not data_to_server:
        continue

    client.send(data_to_server.encode("utf-8"))

    # 如果输入q代表要退出
    if data_to_server == "q":
        break

    data_from_server = client.recv(1024)
    result = data_from_server.decode()
    # 如果返回q也退出
    if result == "q":
        break
    print(f"data_from_server :>>>> {result}")
